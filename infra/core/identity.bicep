// The app's user-assigned identity: storage, the vault, Application Insights and (when the
// operator grants it) an Azure Quantum workspace all accept it, so the app holds no keys.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
